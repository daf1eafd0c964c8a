# "What color is the triangle?" -- an open answer: ask a VQA model, and fall back to picking
# one of the known colours when its answer is not one of them.
# Catalog: edgefmp/data/demo_catalog.yaml (bundled) or models/catalog.yaml (the zoo, in a checkout).
COLORS = ["red", "green", "blue", "yellow", "teal", "brown", "gray", "black"]


def execute_command(image):
    triangles = image.find("triangle")
    if not triangles:
        return "no triangle"
    triangle = triangles[0]
    answer = triangle.query("What color is the triangle?").strip().lower()
    if answer in COLORS:
        return answer
    return triangle.best_text_match(COLORS)
