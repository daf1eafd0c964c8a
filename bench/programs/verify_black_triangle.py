# "Is there a black triangle?"
# Detect every triangle, then check each one's colour.
def execute_command(image):
    for patch in image.find("triangle"):
        if patch.verify_property("triangle", "black"):
            return "yes"
    return "no"
