# Typed dates: 31.12.2024 (shown in forms) and ISO. Not Django's "%d.%m.%y": a two-digit year
# would have to be guessed into a century.
DATE_INPUT_FORMATS = ["%d.%m.%Y", "%Y-%m-%d"]
# A date known to the month: as typed, 02/2021.
YEAR_MONTH_FORMAT = "m/Y"
