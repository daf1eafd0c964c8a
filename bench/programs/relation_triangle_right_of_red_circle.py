# "Is there a triangle to the right of a red circle?"
# Detect both kinds of object and compare every pair's positions (y grows downwards).
def execute_command(image):
    for a in image.find("triangle"):
        for b in image.find("red circle"):
            if a.horizontal_center > b.horizontal_center:
                return "yes"
    return "no"
