# "Is the circle above the rectangle?" -- y grows downwards (origin top-left), so "above"
# means a smaller vertical_center.
# Catalog: edgefmp/data/demo_catalog.yaml (bundled) or models/catalog.yaml (the zoo, in a checkout).
def execute_command(image):
    circles = image.find("circle")
    rectangles = image.find("rectangle")
    if not circles or not rectangles:
        return "no"
    return bool_to_yesno(circles[0].vertical_center < rectangles[0].vertical_center)  # noqa: F821 (a DSL function)
