# "Is there a black triangle to the left of a teal circle?"
# Detect triangles and circles, keep those of the asked colours, compare positions.
def execute_command(image):
    triangles = [t for t in image.find("triangle") if t.verify_property("triangle", "black")]
    if not triangles:
        return "no"
    circles = [c for c in image.find("circle") if c.verify_property("circle", "teal")]
    for t in triangles:
        for c in circles:
            if t.horizontal_center < c.horizontal_center:
                return "yes"
    return "no"
