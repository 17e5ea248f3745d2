"""tigertrap publish: a verified classifier bundle to the Hugging Face Hub and to AddaxAI.

``hub`` uploads, ``model_card`` writes the Hub's README.md, ``addaxai_v6`` and ``addaxai_v7``
write AddaxAI's two model-folder layouts, ``sums`` the SHA256SUMS files, ``publish`` ties them
together and ``cli`` is the ``tigertrap publish`` command.
"""
