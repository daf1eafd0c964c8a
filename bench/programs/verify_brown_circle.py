# "Is there a brown circle?"
# Detect every circle, then check each one's colour.
def execute_command(image):
    for patch in image.find("circle"):
        if patch.verify_property("circle", "brown"):
            return "yes"
    return "no"
