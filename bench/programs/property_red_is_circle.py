# "Is the red shape a circle?"
# The frame shows one red shape: find it, then verify its shape.
def execute_command(image):
    found = image.find("red")
    if not found:
        return "no"
    return bool_to_yesno(found[0].verify_property("red shape", "circle"))  # noqa: F821
