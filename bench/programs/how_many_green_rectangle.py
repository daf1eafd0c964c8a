# "How many green rectangles are there?"
def execute_command(image):
    return image.count("green rectangle")
