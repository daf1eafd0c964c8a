# "Are there exactly two circles?"
def execute_command(image):
    return bool_to_yesno(image.count("circle") == 2)  # noqa: F821
