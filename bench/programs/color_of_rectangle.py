# "What color is the rectangle?"
# Find the rectangle; ask a VQA model its colour, mapped onto the known colours.
COLORS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    found = image.find("rectangle")
    if not found:
        return "none"
    answer = found[0].query("What color is the rectangle?").strip().lower()
    if answer in COLORS:
        return answer
    return found[0].best_text_match(COLORS)
