# "Is there a blue rectangle below a gray circle?"
# Detect both kinds of object and compare every pair's positions (y grows downwards).
def execute_command(image):
    for a in image.find("blue rectangle"):
        for b in image.find("gray circle"):
            if a.vertical_center > b.vertical_center:
                return "yes"
    return "no"
