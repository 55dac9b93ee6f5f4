"""What an instructor writes and what is made from it: exercises and challenges (declared in cases.py), the reference, plans (``GradedItem``), held-out data, release, scaffold, the student bundle."""
