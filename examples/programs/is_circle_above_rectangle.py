# "Is the circle above the rectangle?" -- y grows downwards (origin top-left), so "above"
# means a smaller vertical_center.
def execute_command(image):
    circles = image.find("circle")
    rectangles = image.find("rectangle")
    if not circles or not rectangles:
        return "no"
    return bool_to_yesno(circles[0].vertical_center < rectangles[0].vertical_center)  # noqa: F821 (a DSL function)
