# "What shape is the black object?"
# Find the black object; pick its shape among the three.
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    found = image.find("black")
    if not found:
        return "none"
    return found[0].best_text_match(SHAPES)
