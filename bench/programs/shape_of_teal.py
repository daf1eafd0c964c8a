# "What shape is the teal object?"
# Find the teal object; pick its shape among the three.
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    found = image.find("teal")
    if not found:
        return "none"
    return found[0].best_text_match(SHAPES)
