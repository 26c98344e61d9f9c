// dynalite, an independent implementation of DynamoDB's API, on 127.0.0.1 only.
// Usage: node server.js PORT
// Tables stay CREATING for half a second after CreateTable, as DynamoDB creates them
// asynchronously: a test that uses a table before it is ACTIVE fails here as it would there.
const dynalite = require('dynalite');
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}
dynalite({ createTableMs: 500, deleteTableMs: 50, updateTableMs: 50 }).listen(port, '127.0.0.1', (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`dynalite listening on 127.0.0.1:${port}`);
});
