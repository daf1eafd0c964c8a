# "Are there at least two rectangles?"
def execute_command(image):
    return bool_to_yesno(len(image.find("rectangle")) >= 2)  # noqa: F821
