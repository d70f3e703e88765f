'use strict';

/**
 * The member's engine id for a registered shopper: read from the profile
 * (custom.loyaltykitCustomerId), or found once through the sidecar's identify (by e-mail, or by the
 * SFCC customer number as external id) and kept on the profile. A shopper who is not a member is
 * remembered as such for the session, so calculate does not ask again.
 */
var Logger = require('dw/system/Logger');
var Transaction = require('dw/system/Transaction');
var config = require('*/cartridge/scripts/loyaltykit/config');
var mapping = require('*/cartridge/scripts/loyaltykit/mapping');
var service = require('*/cartridge/scripts/loyaltykit/service');

var log = Logger.getLogger('loyaltykit', 'member');

function sessionPrivacy() {
    /* global session */
    return typeof session !== 'undefined' && session && session.privacy ? session.privacy : null;
}

/** Returns the engine id (stored on the profile) or null; never throws, never blocks checkout. */
function ensure(customer) {
    if (!customer || !customer.registered || !customer.profile) {
        return null;
    }
    var profile = customer.profile;
    if (profile.custom.loyaltykitCustomerId) {
        return String(profile.custom.loyaltykitCustomerId);
    }
    var privacy = sessionPrivacy();
    if (privacy && privacy.loyaltykitNotMember) {
        return null;
    }
    var byEmail = config.identifyBy() === 'email';
    var value = byEmail ? profile.email : profile.customerNo;
    if (!value) {
        return null;
    }
    var answer = service.identify(mapping.identifyBody(byEmail ? 'email' : 'external_id', value));
    if (!answer.ok) {
        if (answer.problem.status === 404 && privacy) {
            privacy.loyaltykitNotMember = true;
        } else if (answer.problem.status !== 404) {
            log.warn('member lookup unavailable ({0})', answer.problem.code);
        }
        return null;
    }
    var id = String(answer.body.id);
    Transaction.wrap(function () { profile.custom.loyaltykitCustomerId = id; });
    return id;
}

module.exports = { ensure: ensure };
