# "Is there a red circle to the left of a blue triangle?"
# Detect both kinds of object and compare every pair's positions (y grows downwards).
def execute_command(image):
    for a in image.find("red circle"):
        for b in image.find("blue triangle"):
            if a.horizontal_center < b.horizontal_center:
                return "yes"
    return "no"
