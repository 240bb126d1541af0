import DravenCore

CGI.serve(Status.self)
