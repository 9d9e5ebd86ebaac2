"""`soma demo`: a night in a sanctuary of virtual beds, judged and reported."""
