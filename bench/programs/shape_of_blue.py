# "What shape is the blue object?"
# Find the blue object; pick its shape among the three.
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    found = image.find("blue")
    if not found:
        return "none"
    return found[0].best_text_match(SHAPES)
