# "How many circles are there?"
def execute_command(image):
    return image.count("circle")
