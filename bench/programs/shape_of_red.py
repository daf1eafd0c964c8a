# "What shape is the red object?"
# Find the red object; ask a VQA model its shape.
SHAPES = ["circle", "rectangle", "triangle"]


def execute_command(image):
    found = image.find("red")
    if not found:
        return "none"
    answer = found[0].query("What shape is this?").strip().lower()
    if answer in SHAPES:
        return answer
    return found[0].best_text_match(SHAPES)
