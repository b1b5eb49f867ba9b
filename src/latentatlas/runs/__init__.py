"""Run folders, the train -> encode -> fit -> sample -> evaluate pipeline, and the HTML report."""
