# "What color is the circle?"
# Find the circle; pick its colour among the known colours.
COLORS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    found = image.find("circle")
    if not found:
        return "none"
    return found[0].best_text_match(COLORS)
