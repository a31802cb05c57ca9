"""The lowest layer: argument checks, the model-state guard, box maths and asset fetching.

Nothing here imports anything else of captum_hint.
"""
