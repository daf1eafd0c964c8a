# "Is there a teal rectangle?"
# Detect rectangles; a VQA model checks the colour of each crop.
def execute_command(image):
    for patch in image.find("rectangle"):
        if patch.query("What color is the rectangle?").strip().lower() == "teal":
            return "yes"
    return "no"
