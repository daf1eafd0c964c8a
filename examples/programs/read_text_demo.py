# "What does the sign say?" -- read the text of the image, tidy it, and name how many words.
# Catalog: examples/catalogs/ocr_remote.yaml. This program calls `ocr`, which neither the bundled
# demo catalog nor the zoo catalog serves; that catalog adds an OpenAI-compatible OCR server
# (RapidOCR via examples/servers/rapidocr_openai.py, or a VLM) to the demo backends:
#   edgefmp run examples/programs/read_text_demo.py --catalog examples/catalogs/ocr_remote.yaml --source VIDEO
def execute_command(image):
    text = image.read_text().strip().lower()
    if not text:
        return "no text"
    words = text.split()
    noun = "word" if len(words) == 1 else "words"
    return f"{len(words)} {noun}: {' '.join(words)}"
