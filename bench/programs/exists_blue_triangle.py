# "Is there a blue triangle?"
# One detector call for the full label.
def execute_command(image):
    return bool_to_yesno(image.exists("blue triangle"))  # noqa: F821 (a DSL function)
