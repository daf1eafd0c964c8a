# "How many blue shapes are there?"
def execute_command(image):
    return image.count("blue")
