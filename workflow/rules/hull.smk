# Distance of test samples to the training convex hull (issue 5).
