'use strict';
// One MockTestRunner scenario: the task's index.js with inputs and the answer crs-ci gives, both from
// the JSON in CRS_SCENARIO (written by _suite.js). The mocked tool prints what the real crs-ci prints.
const path = require('path');
const { TaskMockRunner } = require('../crs-ci-task/node_modules/azure-pipelines-task-lib/mock-run');

const sc = JSON.parse(process.env.CRS_SCENARIO);
const tmr = new TaskMockRunner(path.join(__dirname, '..', 'crs-ci-task', 'index.js'));
for (const [k, v] of Object.entries(sc.inputs)) tmr.setInput(k, v);
tmr.setAnswers({
  which: { 'crs-ci': '/opt/crs-ci/crs-ci' },
  checkPath: { '/opt/crs-ci/crs-ci': true, '/custom/crs-ci': true },
  exec: sc.exec,
});
tmr.run();
