"""The plan: a recipe read off the data's fingerprint, each choice with its reason.

Not part of the training engine: it reads data (``seglab.data``) and model facts (``seglab.models``) and
hands the trainer a config. ``recipe.py`` holds the fingerprint and the rules, ``scale.py`` the training scale
and crop (``data.resize``, crop size, U-Net depth), ``apply.py`` how a plan meets what the user wrote.
"""
