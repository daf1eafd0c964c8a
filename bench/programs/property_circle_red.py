# "Is the circle red?"
# The frame shows one circle: find it and verify its colour.
def execute_command(image):
    found = image.find("circle")
    if not found:
        return "no"
    return bool_to_yesno(found[0].verify_property("circle", "red"))  # noqa: F821
