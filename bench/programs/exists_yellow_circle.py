# "Is there a yellow circle?"
# One detector call for the full label.
def execute_command(image):
    return bool_to_yesno(image.exists("yellow circle"))  # noqa: F821 (a DSL function)
