"""``lion review``: one offline HTML page that ranks a prediction folder's cases for review.

:mod:`.cases` reads ``lion predict``'s output (report.json, pictures, optional Dice against
ground truth) into one record per case and puts them in review order; :mod:`.gallery` writes
``GALLERY/index.html`` and ``GALLERY/images/``; :mod:`.reviews` reads and writes
``GALLERY/reviews.csv``; :mod:`.server` serves the folder on 127.0.0.1 and records decisions.
"""
