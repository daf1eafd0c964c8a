# "Is there a green rectangle?"
# One detector call for the full label.
def execute_command(image):
    return bool_to_yesno(image.exists("green rectangle"))  # noqa: F821 (a DSL function)
