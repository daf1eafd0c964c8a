# "Are there exactly two red triangles?"
def execute_command(image):
    return bool_to_yesno(image.count("red triangle") == 2)  # noqa: F821
