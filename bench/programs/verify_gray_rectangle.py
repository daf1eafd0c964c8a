# "Is there a gray rectangle?"
# Detect every rectangle, then check each one's colour.
def execute_command(image):
    for patch in image.find("rectangle"):
        if patch.verify_property("rectangle", "gray"):
            return "yes"
    return "no"
