# "What color is the triangle?"
# Find the triangle; ask a VQA model its colour, mapped onto the known colours.
COLORS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    found = image.find("triangle")
    if not found:
        return "none"
    answer = found[0].query("What color is the triangle?").strip().lower()
    if answer in COLORS:
        return answer
    return found[0].best_text_match(COLORS)
