# "Is the triangle blue?"
# The frame shows one triangle: find it and verify its colour.
def execute_command(image):
    found = image.find("triangle")
    if not found:
        return "no"
    return bool_to_yesno(found[0].verify_property("triangle", "blue"))  # noqa: F821
