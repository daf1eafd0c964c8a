# "Is there a red circle?" -- detect circles, then verify each one's colour.
# Catalog: edgefmp/data/demo_catalog.yaml (bundled) or models/catalog.yaml (the zoo, in a checkout).
def execute_command(image):
    circles = image.find("circle")
    for circle in circles:
        if circle.verify_property("circle", "red"):
            return "yes"
    return "no"
