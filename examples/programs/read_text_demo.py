# "What does the sign say?" -- read the text of the image, tidy it, and name how many words.
def execute_command(image):
    text = image.read_text().strip().lower()
    if not text:
        return "no text"
    words = text.split()
    return f"{len(words)} words: {' '.join(words)}"
