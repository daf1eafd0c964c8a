# "Are there at least three blue shapes?"
def execute_command(image):
    return bool_to_yesno(image.count("blue") >= 3)  # noqa: F821
