# "What color is the circle above the blue rectangle?"
# Find the blue rectangle, then the circle on the asked side of it, and name its color.
OPTIONS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    anchors = image.find("blue rectangle")
    if not anchors:
        return "none"
    anchor = anchors[0]
    for patch in image.find("circle"):
        if patch.vertical_center < anchor.vertical_center:
            return patch.best_text_match(OPTIONS)
    return "none"
