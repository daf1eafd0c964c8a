# "Is there a yellow circle above a green rectangle?"
# Detect both kinds of object and compare every pair's positions (y grows downwards).
def execute_command(image):
    for a in image.find("yellow circle"):
        for b in image.find("green rectangle"):
            if a.vertical_center < b.vertical_center:
                return "yes"
    return "no"
