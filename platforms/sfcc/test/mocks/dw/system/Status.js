'use strict';
class Status {
    constructor(status, code, message) {
        this.status = status;
        this.code = code || (status === Status.OK ? 'OK' : 'ERROR');
        this.message = message || null;
        this.error = status === Status.ERROR;
    }
}
Status.OK = 0;
Status.ERROR = 1;
module.exports = Status;
