// Runs @cornerstonejs/calculate-suv (installed by tests/node/install.sh into tests/.node) on a
// JSON array of instance metadata (DICOM keywords, one object per slice) read from stdin and
// writes its body-weight SUV factors (one number per slice, to multiply the rescaled values) as
// a JSON array. An error the package throws goes to stderr with exit code 3.
"use strict";
const path = require("path");
const { calculateSUVScalingFactors } = require(
  path.join(__dirname, "..", ".node", "node_modules", "@cornerstonejs", "calculate-suv"),
);

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  let factors;
  try {
    factors = calculateSUVScalingFactors(JSON.parse(input)).map((f) => f.suvbw);
  } catch (e) {
    process.stderr.write(String(e && e.message ? e.message : e));
    process.exit(3);
  }
  process.stdout.write(JSON.stringify(factors));
});
