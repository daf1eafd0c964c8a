# "Is there a teal triangle?"
# One detector call for the full label.
def execute_command(image):
    return bool_to_yesno(image.exists("teal triangle"))  # noqa: F821 (a DSL function)
