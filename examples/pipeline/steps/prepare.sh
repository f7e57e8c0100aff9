# Drops the header and blank lines.
tail -n +2 "$TWINLOOP_INPUT_RAW" | grep -v '^$' > "$TWINLOOP_OUTPUT_CLEAN"
