# "How many red triangles are there?"
def execute_command(image):
    return image.count("red triangle")
