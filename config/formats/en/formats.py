# Unambiguous dates for English users in a German clinic: ISO 8601.
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
# Typed dates: ISO only. Django's English list also reads 01/02/2024 month-first (US), a date a
# German clinic reads day-first.
DATE_INPUT_FORMATS = ["%Y-%m-%d"]
# A date known to the month: ISO 8601, 2021-02.
YEAR_MONTH_FORMAT = "Y-m"
