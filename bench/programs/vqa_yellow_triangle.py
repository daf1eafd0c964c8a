# "Is there a yellow triangle?"
# Ask a VQA model about the whole frame, no decomposition.
def execute_command(image):
    return image.query("Is there a yellow triangle?")
