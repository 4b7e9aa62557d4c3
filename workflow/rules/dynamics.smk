# Outputs along directions, GI during training, partial label randomisation (issue 4).
