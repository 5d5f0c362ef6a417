//! Fossil's HTTP sync protocol ("xfer"): the card codec, the server side over
//! a repository, and a client for any Fossil server.
